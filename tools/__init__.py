"""Developer tools: training the bundled tiny HAT models and measuring quality (not part of the installed package)."""
