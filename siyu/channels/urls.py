"""Public channel endpoints (platform callbacks)."""

from django.urls import path

from siyu.channels.wecom.views import wecom_callback

app_name = "channels"
urlpatterns = [
    path("wecom/<int:account_id>/callback", wecom_callback, name="wecom-callback"),
]
