"""The reviewer pages (/review): server-rendered Jinja2 templates over the review services, a
little vanilla JavaScript, cookie sessions with CSRF tokens. No front-end build step."""
