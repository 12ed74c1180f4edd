from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "siyu.campaigns"
    label = "campaigns"
    verbose_name = "campaigns (裂变)"
