"""GET /openapi.json, assembled from the operations the routes declare; GET /docs."""
