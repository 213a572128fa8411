from django.urls import path

from billing import order_actions, views

app_name = "billing"

urlpatterns = [
    path("orders/<int:order_id>/receipt/", views.order_receipt, name="order-receipt"),
]

# The customer's order pages. Like the other console pages (and the shell's navigation,
# which looks for `orders`) their names are not namespaced, so console/urls.py includes this
# list on its own; the receipt keeps its "billing:" name, which the API's links use.
order_page_patterns = [
    path("orders/", views.order_list, name="orders"),
    path("orders/new/", views.order_new, name="order-new"),
    path("orders/renew/", views.order_renew, name="order-renew"),
    path("orders/<int:order_id>/", views.order_detail, name="order-detail"),
    path("orders/<int:order_id>/refund/", views.order_refund, name="order-refund"),
    path("orders/<int:order_id>/cancel/", order_actions.order_cancel, name="order-cancel"),
    path(
        "orders/renew-expiring/",
        order_actions.renew_expiring,
        name="order-renew-expiring",
    ),
]
