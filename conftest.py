# pytester drives whole pytest runs in the plugin's own tests; it must be enabled in the root conftest.
pytest_plugins = ["pytester"]
