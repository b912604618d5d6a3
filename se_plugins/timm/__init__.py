"""timm adapter: SE models in timm's model registry."""
