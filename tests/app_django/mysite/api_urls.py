from django.urls import path

from mysite import views

urlpatterns = [path("items/<int:item_id>", views.item)]
