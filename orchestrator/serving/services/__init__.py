"""One service per endpoint (ocr, compare, jobs, extract, render), each asking the backend directory for handles;
the route modules under ``api/routes`` call them, the ``Router`` ingress holds them."""
