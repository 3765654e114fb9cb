"""``python -m serving``: run the API with settings from the environment."""

from serving.main import run

if __name__ == "__main__":
    run()
