from django.apps import AppConfig


class CommerceConfig(AppConfig):
    name = "siyu.commerce"
    label = "commerce"
    verbose_name = "Commerce"
