from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "siyu.outreach"
    label = "outreach"
    verbose_name = "outreach (触达)"
