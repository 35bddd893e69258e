"""The router's OpenAPI 3.1 document."""

SPEC: dict = {"openapi": "3.1.0", "info": {"title": "Switchboard", "version": "0.1.0"}, "paths": {}}
