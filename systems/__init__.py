"""Systems under test that ship with Graylink: ``register`` (the tutorial) and, later, ``dynamo``."""
