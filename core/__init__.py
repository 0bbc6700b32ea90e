"""Pure code every layer uses: the clock, the programme file, texts, phones, messages, vocabulary, ports.

Nothing here imports the rest of the project (import-linter checks it), so every layer may depend on it.
"""
