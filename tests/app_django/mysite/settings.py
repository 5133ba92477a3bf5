"""Settings of the Django test project. Importable only from tests/app_django (the server's
--chdir / --app-dir), never from the interpreter's start-up path."""

SECRET_KEY = "ferrotel-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
TEMPLATES = []
DATABASES = {}
USE_TZ = True
