from tests.conftest import publish_table

def test_smoke(client, api_settings, make_swarm, agent_headers, admin_headers):
    publish_table(api_settings.served_path, "demo.public.orders", "select range id, 'x'||range s from range(1000)", descriptions={"id": "the id"})
    sw = make_swarm(["demo.public.orders", "demo.public.nothing"])
    h = agent_headers(sw["id"])
    for u in ["/api/v1/data/tables", "/api/v1/data/tables/orders", "/api/v1/data/tables/public.orders", "/api/v1/data/tables/nothing", "/api/v1/data/tables/secret"]:
        r = client.get(u, headers=h); print(u, r.status_code, r.text)
    r = client.get("/api/v1/data/tables", headers=admin_headers); print(r.status_code, r.text[:300])
