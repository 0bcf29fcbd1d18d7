from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("security/", views.security, name="security"),
    path("time-zone/", views.time_zone, name="time-zone"),
    path("password/", views.password_change, name="password-change"),
    path("sign-out-everywhere/", views.sign_out_everywhere, name="sign-out-everywhere"),
    path("mfa/enrol/", views.mfa_enrol, name="mfa-enrol"),
    path("mfa/enrol/confirm/", views.mfa_confirm, name="mfa-confirm"),
    path("mfa/verify/", views.mfa_verify, name="mfa-verify"),
    path("mfa/recovery-codes/", views.recovery_codes_new, name="recovery-codes"),
    path("people/", views.people, name="people"),
    path("people/<int:pk>/", views.person_change, name="person-change"),
    path("people/<int:pk>/reset-mfa/", views.person_reset_mfa, name="person-reset-mfa"),
    path("people/new/", views.person_add, name="person-add"),
    path("people/grants/", views.grant_add, name="grant-add"),
    path("people/grants/<int:pk>/remove/", views.grant_remove, name="grant-remove"),
]
