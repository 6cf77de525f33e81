"""The remote engine: replies from an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server,
`transformers serve`, Ollama), with the bot's LoRA adapters loaded there at run time.

Only `options` is imported to check the configuration; the client library is imported in
`RemoteEngine.start`.
"""
