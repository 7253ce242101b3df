-- The production-like application schema of lab1/lab2: three schemas, foreign keys, sequences,
-- indexes, a view, and about 420k rows. Run once, as the database's owner (psql variable owner), in one transaction.
BEGIN;
SET ROLE :"owner";
SET search_path = app;

CREATE SCHEMA app AUTHORIZATION :"owner";
CREATE SCHEMA billing AUTHORIZATION :"owner";
CREATE SCHEMA audit AUTHORIZATION :"owner";

CREATE TABLE app.schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.customers (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    country    char(2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.products (
    id    serial PRIMARY KEY,
    sku   text NOT NULL UNIQUE,
    name  text NOT NULL,
    price numeric(10, 2) NOT NULL CHECK (price >= 0)
);

CREATE TABLE app.orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES app.customers (id),
    status      text NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id_idx ON app.orders (customer_id);
CREATE INDEX orders_created_at_idx ON app.orders (created_at);

CREATE TABLE app.order_items (
    order_id   bigint NOT NULL REFERENCES app.orders (id) ON DELETE CASCADE,
    product_id integer NOT NULL REFERENCES app.products (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product_id_idx ON app.order_items (product_id);

CREATE SEQUENCE billing.invoice_number_seq START 100000;
CREATE TABLE billing.invoices (
    id        bigserial PRIMARY KEY,
    number    bigint NOT NULL UNIQUE DEFAULT nextval('billing.invoice_number_seq'),
    order_id  bigint NOT NULL UNIQUE REFERENCES app.orders (id),
    amount    numeric(12, 2) NOT NULL,
    issued_at timestamptz NOT NULL,
    paid_at   timestamptz
);

CREATE TABLE billing.payments (
    id         bigserial PRIMARY KEY,
    invoice_id bigint NOT NULL REFERENCES billing.invoices (id),
    amount     numeric(12, 2) NOT NULL,
    method     text NOT NULL,
    paid_at    timestamptz NOT NULL
);
CREATE INDEX payments_invoice_id_idx ON billing.payments (invoice_id);

CREATE TABLE audit.events (
    id          bigserial PRIMARY KEY,
    customer_id bigint REFERENCES app.customers (id),
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_at_idx ON audit.events (at);
CREATE INDEX events_payload_idx ON audit.events USING gin (payload);

CREATE VIEW app.customer_order_totals AS
SELECT c.id AS customer_id, c.email, count(DISTINCT o.id) AS orders, coalesce(sum(i.quantity * i.unit_price), 0) AS total
FROM app.customers c
LEFT JOIN app.orders o ON o.customer_id = c.id
LEFT JOIN app.order_items i ON i.order_id = o.id
GROUP BY c.id, c.email;

-- Deterministic data (setseed), so every lab host starts from the same rows.
SELECT setseed(0.42);

INSERT INTO app.customers (email, name, country, created_at)
SELECT format('user%s@example.com', g), format('Customer %s', g),
       (ARRAY['DE', 'FR', 'US', 'GB', 'NL', 'PL', 'SE', 'ES'])[1 + g % 8],
       timestamptz '2024-01-01' + g * interval '37 minutes'
FROM generate_series(1, 20000) AS g;

INSERT INTO app.products (sku, name, price)
SELECT format('SKU-%s', lpad(g::text, 5, '0')), format('Product %s', g), round((1 + random() * 499)::numeric, 2)
FROM generate_series(1, 500) AS g;

INSERT INTO app.orders (customer_id, status, created_at)
SELECT 1 + (g * 7919) % 20000,
       (ARRAY['new', 'paid', 'paid', 'shipped', 'shipped', 'cancelled'])[1 + g % 6],
       timestamptz '2024-06-01' + g * interval '9 minutes'
FROM generate_series(1, 60000) AS g;

INSERT INTO app.order_items (order_id, product_id, quantity, unit_price)
SELECT o.id, p.product_id, 1 + (o.id + p.n) % 4, pr.price
FROM app.orders o
CROSS JOIN LATERAL (SELECT n, 1 + ((o.id * 31 + n * 97) % 500)::int AS product_id FROM generate_series(1, 2) AS n) p
JOIN app.products pr ON pr.id = p.product_id;

INSERT INTO billing.invoices (order_id, amount, issued_at, paid_at)
SELECT o.id, t.total, o.created_at + interval '1 hour',
       CASE WHEN o.status IN ('paid', 'shipped') THEN o.created_at + interval '2 hours' END
FROM app.orders o
JOIN (SELECT order_id, sum(quantity * unit_price) AS total FROM app.order_items GROUP BY order_id) t ON t.order_id = o.id
WHERE o.status <> 'cancelled';

INSERT INTO billing.payments (invoice_id, amount, method, paid_at)
SELECT id, amount, (ARRAY['card', 'sepa', 'paypal'])[1 + id % 3], paid_at
FROM billing.invoices WHERE paid_at IS NOT NULL;

INSERT INTO audit.events (customer_id, kind, payload, at)
SELECT 1 + g % 20000, (ARRAY['login', 'logout', 'order', 'password_reset'])[1 + g % 4],
       jsonb_build_object('ip', format('198.51.100.%s', g % 250), 'seq', g),
       timestamptz '2024-06-01' + g * interval '5 minutes'
FROM generate_series(1, 100000) AS g;

INSERT INTO app.schema_migrations (version) VALUES ('2024_01_init'), ('2024_06_billing'), ('2024_09_audit');

COMMIT;
RESET ROLE;
ANALYZE;
