"""Wire formats: request/response Structs of the provider APIs the gateway speaks."""
