"""A replicated register with a leader: Graylink's tutorial system, written as a user would write one.

See ``system.py`` for how it plugs into the harness and ``replica.py`` / ``client.py`` for the code that
runs on the nodes.
"""

from systems.register.system import RegisterSystem

__all__ = ["RegisterSystem"]
