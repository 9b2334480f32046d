"""Pure physics of LLM inference: numpy in, numpy out. No I/O, no printing, no catalog access."""
