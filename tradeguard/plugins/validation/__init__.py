"""Validation plugins: accuracy metrics (VAL), which judge every signal by what followed it."""
