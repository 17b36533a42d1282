// LLM providers
