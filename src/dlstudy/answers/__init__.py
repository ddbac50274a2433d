"""The homework answers in words. Each function takes numbers from a run's results and returns one to
three sentences; every number in them is read from its arguments, and every qualitative word
("helps", "collapses", "confuses") is chosen by a threshold named in the function, so a test can
feed hand-made numbers and check that the words follow them."""
