"""jcl: continual learning in JAX (placeholder, replaced below)."""
