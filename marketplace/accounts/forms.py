"""Forms of the account pages: sign up, profile, API tokens."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from marketplace.accounts.models import User


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="Used for password resets only.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_username(self) -> str:
        username = super().clean_username()
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken.")
        return username


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("first_name", "last_name", "email")


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Say where it is used, e.g. “laptop CLI” or “CI”.")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A token needs a name.")
        return name
