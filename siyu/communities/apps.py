from django.apps import AppConfig


class CommunitiesConfig(AppConfig):
    name = "siyu.communities"
    label = "communities"
