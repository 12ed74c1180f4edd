"""Public live-code entry: ``/c/<code>`` (route a scan) and ``/c/<code>.png`` (its QR)."""

from django.urls import path, re_path

from siyu.acquisition import views

app_name = "acquisition"

urlpatterns = [
    re_path(r"^(?P<code>[a-z0-9]{4,16})\.png$", views.qr_png, name="qr"),
    path("<str:code>", views.scan, name="scan"),
]
