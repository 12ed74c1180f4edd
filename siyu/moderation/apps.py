from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "siyu.moderation"
    label = "moderation"
