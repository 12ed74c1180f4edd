from django.apps import AppConfig


class AcquisitionConfig(AppConfig):
    name = "siyu.acquisition"
    label = "acquisition"
    verbose_name = "acquisition (引流)"
