"""URLs for the commerce API tests: the project's URLs, with the commerce router mounted
in front under /api/v1/ (with the main API's authentication and error handlers) until
the lead mounts it in ``siyu.api.urls``. Paths it does not know fall through to the
project's own API."""

from django.urls import path
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from config.urls import urlpatterns as project_urls
from siyu.api import urls as main
from siyu.api.auth import TokenAuth
from siyu.api.commerce import router
from siyu.core.errors import SiyuError

commerce_api = NinjaAPI(auth=TokenAuth(), urls_namespace="commerce-test", docs_url=None, openapi_url=None)
# ninja types the handler argument as "exception or its class"; the main API's handlers take instances.
commerce_api.add_exception_handler(SiyuError, main._siyu_error)  # type: ignore[arg-type]
commerce_api.add_exception_handler(AuthenticationError, main._unauthorized)  # type: ignore[arg-type]
commerce_api.add_exception_handler(NinjaValidationError, main._invalid)  # type: ignore[arg-type]
commerce_api.add_exception_handler(HttpError, main._http_error)  # type: ignore[arg-type]
commerce_api.add_router("/", router)

urlpatterns = [path("api/v1/", commerce_api.urls), *project_urls]
