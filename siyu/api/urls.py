from ninja import NinjaAPI

api = NinjaAPI(title="siyu API", version="1", urls_namespace="api")
