"""Broken factories for the --impl self-tests."""


def raises():
    raise RuntimeError("boom in factory")


def wrong_type():
    return 42


def no_model():
    return {"output": "logits"}


not_callable = 3
