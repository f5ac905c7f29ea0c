"""HTTP for certificates: the public verification (``verify``), the JSON API (``api``) and the
HTML pages (``pages``). ``ROUTES`` are the staff routes; ``PUBLIC_ROUTES`` are cookieless and go on
the app's public router."""

from typing import Any

from app.certificates.controllers.api import ApplicationApi, CertificateApi
from app.certificates.controllers.pages import CertificatePages
from app.certificates.controllers.verify import PublicVerification

ROUTES: list[Any] = [CertificateApi, ApplicationApi, CertificatePages]
PUBLIC_ROUTES: list[Any] = [PublicVerification]

__all__ = ["PUBLIC_ROUTES", "ROUTES"]
