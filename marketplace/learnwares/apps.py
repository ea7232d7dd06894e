from django.apps import AppConfig


class LearnwaresConfig(AppConfig):
    name = "marketplace.learnwares"
    label = "learnwares"
