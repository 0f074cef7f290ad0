from tests.web.conftest import _fresh_routers, rt  # noqa: F401  the shipped deployment
