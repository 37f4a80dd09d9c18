"""The fixtures themselves: servers answer, and can be stopped and started again."""
import redis


def test_redis_fixture_answers(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping() is True


def test_postgres_fixture_answers(postgres_server):
    assert postgres_server.scalar("SELECT 40 + 2") == 42


def test_postgres_restarts_on_same_port(postgres_isolated):
    port = postgres_isolated.port
    postgres_isolated.stop()
    assert not postgres_isolated.running
    postgres_isolated.start()
    assert postgres_isolated.port == port
    assert postgres_isolated.scalar("SELECT 1") == 1
