"""Every portal page: the home and account pages here, plus each domain app's portal_urls."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from marketplace.portal import accounts, views

account_patterns = [
    path("login/", accounts.RateLimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", accounts.signup, name="signup"),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("password/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("", accounts.account, name="account"),
    path("tokens/", accounts.tokens, name="account-tokens"),
    path("tokens/<int:token_id>/revoke/", accounts.token_revoke, name="account-token-revoke"),
    path("learnwares/", accounts.my_learnwares, name="account-learnwares"),
    path("tasks/", accounts.my_submissions, name="account-submissions"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include(account_patterns)),
    path("", include("marketplace.learnwares.portal_urls")),
    path("", include("marketplace.search.portal_urls")),
    path("", include("marketplace.submissions.portal_urls")),
]
