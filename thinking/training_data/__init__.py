"""Training data from conversations: recorded turns and imported chat logs kept in one store, and
exported in the formats the fine-tuning tools load (LLaMA-Factory, OpenAI, Alpaca, Kaldi ASR)."""
