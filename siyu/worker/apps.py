from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "siyu.worker"
    label = "worker"
