from django.contrib import admin
from django.urls import include, path

from siyu.api.urls import api
from siyu.commerce.webhooks import order_webhook
from siyu.core.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("channels/", include("siyu.channels.urls")),
    path("c/", include("siyu.acquisition.urls")),
    path("hooks/orders/<slug:workspace_slug>", order_webhook, name="order-webhook"),
    path("console/", include("siyu.console.urls")),
    path("", include("siyu.console.root_urls")),
]
