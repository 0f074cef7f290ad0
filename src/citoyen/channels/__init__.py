"""Channel adapters: turn provider requests into neutral inputs and neutral prompts into output."""
