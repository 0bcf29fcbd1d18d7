"""Rotation pages: Rotate now, attempt status, reveal, test connection (being written)."""

from django.http import HttpResponse


def _todo(request, pk):
    return HttpResponse("not yet", status=501)


rotate_now = reveal_password = test_connection = attempt_detail = attempt_status = _todo
