"""The HAT desktop app (PyQt6): a thin front end over ``hat_plugin``; start it with ``python -m gui`` or ``hat-gui``."""
