"""accounts, memberships, login sessions; gold pairs, adjudication and the answered count of queries

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('annotator') as batch:
        batch.add_column(sa.Column('password_hash', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
    op.create_table('membership',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotator.id'], name=op.f('fk_membership_annotator_id_annotator'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_membership_project_id_project'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'annotator_id', name=op.f('pk_membership'))
    )
    op.create_index(op.f('ix_membership_annotator_id'), 'membership', ['annotator_id'], unique=False)
    op.create_table('login_session',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotator.id'], name=op.f('fk_login_session_annotator_id_annotator'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_login_session'))
    )
    op.create_index(op.f('ix_login_session_annotator_id'), 'login_session', ['annotator_id'], unique=False)
    with op.batch_alter_table('query') as batch:
        batch.add_column(sa.Column('gold_pref', sa.Float(), nullable=True))
        batch.add_column(sa.Column('adjudicated_pref', sa.Float(), nullable=True))
        batch.add_column(sa.Column('adjudicated_by', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('adjudicated_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('answered', sa.Integer(), nullable=False, server_default='0'))
        batch.create_foreign_key(op.f('fk_query_adjudicated_by_annotator'), 'annotator', ['adjudicated_by'], ['id'], ondelete='SET NULL')
        batch.create_check_constraint('gold_pref_values', 'gold_pref IS NULL OR gold_pref IN (0, 0.5, 1)')
        batch.create_check_constraint('adjudicated_pref_values', 'adjudicated_pref IS NULL OR adjudicated_pref IN (0, 0.5, 1)')
    op.create_index('ix_query_project_serving', 'query', ['project_id', sa.text('answered DESC'), sa.text('priority DESC'), 'id'], unique=False)
    answered = "label.choice IN ('left', 'right', 'equal', 'cant_tell')"
    op.execute(f"UPDATE query SET answered = (SELECT count(*) FROM label WHERE label.query_id = query.id AND {answered})")
    with op.batch_alter_table('project') as batch:
        batch.add_column(sa.Column('answer_count', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('answered_pairs', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('pair_count', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE project SET answer_count = (SELECT coalesce(sum(answered), 0) FROM query WHERE query.project_id = project.id), "
               "answered_pairs = (SELECT count(*) FROM query WHERE query.project_id = project.id AND answered > 0), "
               "pair_count = (SELECT count(*) FROM query WHERE query.project_id = project.id)")
    op.create_index('ix_claim_annotator_id', 'claim', ['annotator_id'], unique=False)
    op.create_table('annotator_count',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('answers', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotator.id'], name=op.f('fk_annotator_count_annotator_id_annotator'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_annotator_count_project_id_project'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'annotator_id', name=op.f('pk_annotator_count'))
    )
    op.execute(f"INSERT INTO annotator_count (project_id, annotator_id, answers) SELECT query.project_id, label.annotator_id, count(*) "
               f"FROM label JOIN query ON query.id = label.query_id WHERE {answered} GROUP BY query.project_id, label.annotator_id")
    op.create_index('ix_label_annotator_answered', 'label', ['annotator_id', 'answered_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_label_annotator_answered', table_name='label')
    op.drop_table('annotator_count')
    op.drop_index('ix_claim_annotator_id', table_name='claim')
    with op.batch_alter_table('project') as batch:
        batch.drop_column('pair_count')
        batch.drop_column('answered_pairs')
        batch.drop_column('answer_count')
    op.drop_index('ix_query_project_serving', table_name='query')
    with op.batch_alter_table('query') as batch:
        batch.drop_constraint(op.f('ck_query_adjudicated_pref_values'), type_='check')
        batch.drop_constraint(op.f('ck_query_gold_pref_values'), type_='check')
        batch.drop_constraint(op.f('fk_query_adjudicated_by_annotator'), type_='foreignkey')
        for column in ('answered', 'adjudicated_at', 'adjudicated_by', 'adjudicated_pref', 'gold_pref'):
            batch.drop_column(column)
    op.drop_index(op.f('ix_login_session_annotator_id'), table_name='login_session')
    op.drop_table('login_session')
    op.drop_index(op.f('ix_membership_annotator_id'), table_name='membership')
    op.drop_table('membership')
    with op.batch_alter_table('annotator') as batch:
        for column in ('locked_until', 'failed_logins', 'must_change_password', 'password_hash'):
            batch.drop_column(column)
