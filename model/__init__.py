"""The shipped sentiment model and the code that builds, evaluates and documents it."""
