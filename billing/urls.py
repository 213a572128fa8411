from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("orders/<int:order_id>/receipt/", views.order_receipt, name="order-receipt"),
]
