"""HTTP layer: create_app(settings) and one package per audience."""
