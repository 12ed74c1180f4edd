from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "siyu.journeys"
    label = "journeys"
    verbose_name = "Journeys (旅程 / SOP)"
