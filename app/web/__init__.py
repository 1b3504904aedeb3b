"""HTTP: the only users of Starlette and sse-starlette (`streaming`)."""
