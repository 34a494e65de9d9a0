"""Jobs: submit fit, evaluate and predict; status, history, artifacts, cancel and retry."""
