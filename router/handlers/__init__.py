"""HTTP handlers, one module per route family. Each validates, then calls the routing core."""
