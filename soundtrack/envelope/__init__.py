"""Predicting the sound's envelope from the pictures: the target (step 09), the model's task in
the training loop, the evaluation (step 10), and the impacts dataset generator (step 00)."""
