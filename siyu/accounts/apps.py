from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "siyu.accounts"
    label = "accounts"
