"""Chat logs people already have (a ChatGPT export, a WeChat CSV, plain JSONL), read and cleaned
into conversations that keep their context: the first stage of turning them into training data."""
