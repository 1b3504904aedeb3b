"""The endpoints, one module per resource, each declaring its OpenAPI operations."""
